// Copies the console's libraries from node_modules into the Python package, where the
// server serves them (the console fetches nothing from anywhere else). Run after changing
// package.json: `make console-vendor`, then commit server/baton_server/console/static/vendor.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const target = '../server/baton_server/console/static/vendor';
mkdirSync(target, { recursive: true });
const libraries = [
  ['@dagrejs/dagre', 'dist/dagre.min.js', 'dagre.min.js'],
  ['chart.js', 'dist/chart.umd.min.js', 'chart.umd.min.js'],
];
const notices = [];
for (const [name, file, copy] of libraries) {
  copyFileSync(`node_modules/${name}/${file}`, `${target}/${copy}`);
  const meta = JSON.parse(readFileSync(`node_modules/${name}/package.json`, 'utf8'));
  const licenseFile = ['LICENSE', 'LICENSE.md'].find((f) => existsSync(`node_modules/${name}/${f}`));
  const license = readFileSync(`node_modules/${name}/${licenseFile}`, 'utf8');
  notices.push(`${copy}: ${name} ${meta.version} (${meta.license})\n\n${license}`);
}
writeFileSync(`${target}/LICENSES.txt`, notices.join('\n\n----\n\n'));
console.log(`copied ${libraries.length} libraries into ${target}`);

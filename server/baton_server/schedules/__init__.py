"""Schedules: deciding which slots fire (planning) and firing them (firing)."""

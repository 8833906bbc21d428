"""Translations of the published questionnaire files (data, see ../../translations.py).

A package so that setuptools ships the JSON files as package data."""

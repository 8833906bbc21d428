"""The web form's own wording, one JSON file per language (see ../texts.py).

A package so that setuptools ships the JSON files as package data."""

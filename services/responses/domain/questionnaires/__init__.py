"""Published questionnaire versions (JSON data, loaded by ``questionnaire.py``).

A package (not a plain folder) so that setuptools ships the JSON files as package data.
A published file is never edited: a change is a new file with a new version.
"""

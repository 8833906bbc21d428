"""Invented personal data for the dispatch tests (no real person).

Kept out of conftest.py so test modules can import it by a unique name."""

CPR = "0101901234"
NAME = "Søren Ærøskøbing-Åberg"
LINK = "https://svar.borgerblik.dk/s/7Hq2xK9pLm3vQ8"
MUNICIPALITY = "Ringkøbing-Skjern Kommune"
PHONE = "+4512345678"

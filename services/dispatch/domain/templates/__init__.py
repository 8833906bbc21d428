# Not code: makes templates/ a package so setuptools ships its *.j2 files
# (the project's package-data globs only match files inside packages).

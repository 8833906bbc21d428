# Not code: makes memo_xsd/ a package so setuptools ships its *.xsd files.
# Version1.2/ cannot be a package (its name has a dot); a non-editable install
# needs package-data to cover "memo_xsd/Version1.2/*.xsd" as well.

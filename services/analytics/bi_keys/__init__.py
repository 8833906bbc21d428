"""Long-lived, revocable, read-only credentials for BI tools that refresh unattended (Power BI's
scheduled refresh, Excel, FLIS): a BI client makes a key with its OAuth2 token and gives the key
to its BI tool, which sends it as HTTP Basic credentials (user name: the key's id, password: its
secret) to analytics' table routes. See docs/analytics-method.md, "Unattended refresh"."""

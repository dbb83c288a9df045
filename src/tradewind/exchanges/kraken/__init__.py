"""All that Kraken speaks: recorded-format parser, live feed and fake server in one folder."""

"""The paper exchange: a simulated venue behind the live venues' interface,
with its market state (book) and its saved state (store) in one package."""

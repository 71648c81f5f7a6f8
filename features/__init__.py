"""The data contract and everything that turns raw touchpoints into account features."""

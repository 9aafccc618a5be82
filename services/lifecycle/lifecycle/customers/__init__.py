"""The customers lifecycle knows exist: interaction's `customer.created` and `customer.erased`, so a hand-made deal
for an id interaction never minted (or erased) is refused instead of being opened for nobody."""

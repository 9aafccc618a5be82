"""The versioned lifecycle rule set: parameters stored as data, the pure derivation, dry runs and replays."""

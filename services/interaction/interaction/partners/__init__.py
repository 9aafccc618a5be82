"""The partner registry (network development): partners as touchpoint sources."""

"""Loading user files: dialect, encoding, archives; cleaning; column roles; validation."""

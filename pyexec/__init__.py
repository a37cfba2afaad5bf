"""pyexec: run an untrusted Python script's main() in a one-use nsjail jail."""

"""Boards and devices: boards as data (boards.json), the memory report and size gate, and arduino-cli
compile / upload / serial monitor."""

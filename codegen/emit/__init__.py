"""C emission and packing: the MLF tar (standalone C + metadata.json) and its reader, test inputs as C arrays
(bin2c), the C library export (CMake, Zephyr, PlatformIO) and the Jinja-rendered Arduino sketch."""

"""Running generated C for real: host gcc (host check, exactness against tf.lite), the Cortex-M4F in QEMU with
our instruction-count plugin (baremetal/), and AVR sketches built by arduino-builder and run in simavr."""

"""QEMU's side of the description: reading a VM (live), its device model (config), option syntax."""

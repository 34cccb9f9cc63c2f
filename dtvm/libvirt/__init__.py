"""libvirt: dtvm's precise description for domains that libvirt runs (read through libvirt's API)."""

"""The dispatcher: claims due deliveries, sends them (through ``mailhooks.sending``), records the outcomes."""

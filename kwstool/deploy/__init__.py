"""The deploy stage: export to the firmware, board profiles, the on-device test."""

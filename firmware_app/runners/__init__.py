"""What runs the chain of stages: offline (a render) and live (the kiosk's threads)."""

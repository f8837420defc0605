"""Commands that measure or inspect the appliance rather than run it: bench, latency, load, soak, doctor, analyze."""

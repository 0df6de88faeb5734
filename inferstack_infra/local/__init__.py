"""The deployment on one machine: local gateway, Lambda runtimes as processes (and, later, moto and pollers)."""

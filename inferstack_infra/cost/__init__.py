"""What a deployment costs and which tier to choose: `inferstack cost` and `inferstack advise`."""

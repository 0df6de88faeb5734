"""Deploy-time code: the CDK app, packaging, the local emulation and the CLI. Never imported at run time."""

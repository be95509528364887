"""The disagg policy pack (see PulumiPolicy.yaml). `policy.rules` holds the import-safe rules."""

"""The DR policy pack (``pulumi preview --policy-pack dr/policy``) and its plain validators."""

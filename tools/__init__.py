"""Delivery tools that CI runs beside the CDK app (not part of it): see tools/diff_gate."""

"""One construct per logical unit; the stacks in stacks/ only compose these."""

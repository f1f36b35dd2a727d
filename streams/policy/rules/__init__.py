"""The rules, one module per group; each rule a small pure function with RULE_ID and SOURCE."""

"""Classical ANOVA of designed experiments: Error() strata, expected mean squares, moment estimates."""

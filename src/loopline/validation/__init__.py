"""Data validation with Great Expectations: the inferred suite, its results and its report."""

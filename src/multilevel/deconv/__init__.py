"""Deconvolution and empirical Bayes: the NPMLE of a mixing distribution, posterior summaries."""

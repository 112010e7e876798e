"""`hubserve bench`'s load generator: ``driver`` sends (in its own process, ``__main__``),
``runner`` starts that process, ``stats`` turns raw measurements into ab-style figures."""

"""Text generation in the replica: the continuous-batching engine and what it needs.

``params`` checks a request's parameters into ``Sampling``; ``chat`` renders chat messages with
the tokenizer's template; ``detok`` turns token ids into text as they come; ``engine`` runs the
causal-LM continuous-batching loop in its own thread; ``seq2seq`` streams the encoder-decoder
tasks one sequence at a time. The answers are the neutral shapes of ``hubserve.types``
(``GeneratedToken``, ``CompletionSummary``); each route renders them in its own dialect.
"""

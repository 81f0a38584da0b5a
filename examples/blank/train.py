"""A placeholder experiment: replace it with yours.

It prints one metric line, `score: VALUE`, which is all Ratchet needs.
"""

X = 0.5  # a "hyperparameter" the proposer can tune
Y = 2.0  # another one

score = (X - 3.0) ** 2 + (Y + 1.0) ** 2
print(f"score: {score:.6f}")

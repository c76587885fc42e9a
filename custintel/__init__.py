"""Customer-intelligence MLOps platform: churn risk, expected spend and segments per customer.

Nothing heavy is imported here, so `custintel --help` stays fast.
"""

__version__ = "0.1.0"

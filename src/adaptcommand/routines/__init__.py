"""The user model: routines mined from each user's history, and how well they match the truth."""

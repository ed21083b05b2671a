"""Training loops (front ends of the model zoo): they fit a recipe and write weights and a card."""

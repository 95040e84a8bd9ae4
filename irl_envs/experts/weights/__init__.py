"""Shipped weights of the ant expert (package data; see docs/ant_expert.md)."""

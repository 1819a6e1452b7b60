"""Skill versions, routing (bandit), champion decisions, materializing SKILL.md."""

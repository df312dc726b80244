"""hedgearena.agents: learned hedgers (stable-baselines3 agents, deep hedging)."""

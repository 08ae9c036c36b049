"""The double pendulum of paper eqs. 19–20 (the equations, the reference integrator, the energy) and
how a network sees it (the input encoding). Shared by ``training`` (data generation) and ``service``
(the physics reference and the rollout's input); imports neither.
"""

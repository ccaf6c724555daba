"""pytest fixtures that serve the Constant Contact emulator over real HTTP."""

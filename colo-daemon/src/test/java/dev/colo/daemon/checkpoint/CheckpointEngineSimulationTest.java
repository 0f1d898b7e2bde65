package dev.colo.daemon.checkpoint;

/** The engine's scenarios on the simulated hypervisor, in virtual time. */
class CheckpointEngineSimulationTest extends CheckpointEngineScenarios {
    @Override
    EngineRig newRig() {
        return new SimulatedEngineRig();
    }

    @Override
    int checkpoints() {
        return 6;
    }
}

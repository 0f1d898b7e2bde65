package dev.colo.daemon.checkpoint;

/** The engine's scenarios on the simulated hypervisor, in virtual time, with the SVM taking checkpoints in place. */
class CheckpointEngineSimulationTest extends CheckpointEngineScenarios {
    @Override
    EngineRig newRig() {
        return new SimulatedEngineRig(true);
    }

    @Override
    int checkpoints() {
        return 6;
    }
}

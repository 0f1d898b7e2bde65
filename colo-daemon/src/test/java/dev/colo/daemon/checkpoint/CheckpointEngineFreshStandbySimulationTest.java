package dev.colo.daemon.checkpoint;

/** The same scenarios on the fallback path: every checkpoint goes into a fresh standby. */
class CheckpointEngineFreshStandbySimulationTest extends CheckpointEngineScenarios {
    @Override
    EngineRig newRig() {
        return new SimulatedEngineRig(false);
    }

    @Override
    int checkpoints() {
        return 6;
    }
}

//! The processes a command runs as: one, or the ranks of the MPI job that a launcher
//! (`mpirun`, Slurm's `srun`, a Kubeflow MPIJob) started it in (`train` and `bench
//! gradient-exchange`; docs/training.md, "Training on a cluster").

#[cfg(feature = "mpi")]
use anyhow::Context;
use crossdenoise_train::run as training;

/// The processes this one works with: alone, or the ranks of its MPI job.
pub struct Processes {
    pub world: training::World,
    #[cfg(feature = "mpi")]
    mpi: Option<std::rc::Rc<training::mpi::Mpi>>,
}

impl Processes {
    #[cfg(feature = "mpi")]
    pub fn join() -> anyhow::Result<Self> {
        use crossdenoise_train::run::collective::launched_processes;
        if launched_processes().is_none() {
            return Ok(Processes {
                world: training::World::default(),
                mpi: None,
            });
        }
        let mpi =
            std::rc::Rc::new(training::mpi::Mpi::init().context("MPI is already initialised")?);
        let world = training::World::new(mpi.clone());
        if world.is_lead() && world.size() > 1 {
            println!(
                "running as {} processes (data-parallel over MPI)",
                world.size()
            );
        }
        Ok(Processes {
            world,
            mpi: Some(mpi),
        })
    }

    /// Without the `mpi` feature, a process that an MPI launcher started among others
    /// refuses to train: each would train alone into the same run folder.
    #[cfg(not(feature = "mpi"))]
    pub fn join() -> anyhow::Result<Self> {
        use crossdenoise_train::run::collective::launched_processes;
        match launched_processes() {
            None | Some(Some(1)) => Ok(Processes {
                world: training::World::default(),
            }),
            Some(n) => anyhow::bail!(
                "an MPI launcher started this process among {} processes, but this \
                 crossdenoise was built without the `mpi` feature, so each would train alone \
                 into the same run folder: build it with `--features mpi` \
                 (scripts/install-mpi.sh installs Open MPI; docs/training.md, \
                 \"Training on a cluster\")",
                n.map_or("several".to_string(), |n| n.to_string())
            ),
        }
    }

    /// The run failed on this process: with other processes, says which one and ends them
    /// all (MPI_Abort), so that none waits for a step that will never come.
    pub fn fail<E: Into<anyhow::Error> + std::fmt::Display>(&self, err: E) -> anyhow::Error {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = self.mpi.as_ref().filter(|_| self.world.size() > 1) {
            eprintln!(
                "error: process {} of {}: {err}",
                self.world.rank(),
                self.world.size()
            );
            mpi.abort(1);
        }
        err.into()
    }
}

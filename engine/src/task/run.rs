//! The task loop.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use weir_exchange::event::{Barrier, WatermarkStatus, batch_data_bytes};
use weir_exchange::{Event, PartitionRouter, cpu};

use super::chain::{ChainOutput, OperatorChain};
use super::checkpointing::{Participant, restored_states};
use super::input::{Alignment, InputEvent, InputGates, InputProgress, ProgressChange, TaskInput};
use super::metrics::{TaskMetrics, TaskReport};
use super::output::OutputWriter;
use super::{OutputTarget, TaskDeployment, TaskHook, TaskInfo};
use crate::event_time::WatermarkGenerator;
use crate::sources::SplitlessReader;
use crate::{Boundedness, Result, Sink};

/// How many events a task hands to its CPU worker ahead of the results it
/// has written out. Enough for the pool to take a run of batches per
/// hand-off while the task reads and writes; few enough that a task holds
/// little beyond what its channels bound.
pub const CPU_QUEUE_DEPTH: usize = 4;

/// Runs one subtask attempt to its end.
///
/// Reads the source or the input gates until every input ended, then
/// finishes the chain, completes every output (end of partition on pipelined
/// channels, a complete file for blocking partitions) and finishes the sink.
/// When the task fails, its partial blocking files are discarded; when the
/// returned future is dropped (cancellation), nothing it wrote becomes
/// visible.
///
/// # Errors
/// The first error of the source, an operator, an input, an output or the
/// sink; or the failure a test's hook injects.
pub async fn run_task(deployment: TaskDeployment) -> Result<TaskReport> {
    let TaskDeployment {
        info,
        chain,
        inputs,
        outputs,
        hook,
        mut checkpoints,
    } = deployment;
    let operators = chain
        .operators
        .iter()
        .map(|f| f.create(&info))
        .collect::<Result<Vec<_>>>()?;
    let mut operators = OperatorChain::new(operators);
    let restore = checkpoints.as_mut().and_then(|c| c.restore.take());
    let source = match (&chain.source, &restore) {
        (Some(factory), Some(restore)) => {
            let source = factory.restore(&info, restore.splits.clone())?;
            // Restored at a parallelism above the split count: an
            // unbounded source's subtasks without splits stay up.
            Some(
                if source.splits().is_empty() && factory.boundedness() == Boundedness::Unbounded {
                    Box::new(SplitlessReader::new(factory.schema()))
                } else {
                    source
                },
            )
        }
        (Some(factory), None) => Some(factory.create(&info)?),
        (None, _) => None,
    };
    if let (Some(restore), Some(setup)) = (&restore, &checkpoints) {
        let store = restore.store.as_ref().unwrap_or(&setup.store);
        operators.restore(restored_states(store, restore, &info).await?)?;
    }
    let watermarks = match (&chain.source, &chain.watermarks, &source) {
        (Some(factory), Some(strategy), Some(source)) => Some(WatermarkGenerator::try_new(
            strategy,
            &factory.schema(),
            &source.splits(),
            Instant::now(),
        )?),
        _ => None,
    };
    let sink = chain.sink.as_ref().map(|s| s.create(&info)).transpose()?;
    let late_sink = chain
        .late_sink
        .as_ref()
        .map(|s| s.create(&info))
        .transpose()?;
    let routers = outputs
        .iter()
        .map(|o| {
            let subpartitions = match &o.target {
                OutputTarget::Pipelined(senders) => senders.len(),
                OutputTarget::Blocking {
                    num_subpartitions, ..
                } => *num_subpartitions,
            };
            PartitionRouter::new(
                o.partitioner.clone(),
                subpartitions,
                info.subtask + info.attempt as usize,
            )
        })
        .collect();
    let progress = InputProgress::new(&inputs.iter().map(Vec::len).collect::<Vec<_>>());
    let scans = source.is_some();
    let alignment = Alignment::default();
    let input = match source {
        Some(source) => TaskInput::Source(source),
        None => TaskInput::Gates(InputGates::new(inputs, &alignment)),
    };
    let checkpoints = checkpoints.map(|setup| Participant::new(setup, &info, alignment));
    let mut task = Task {
        info,
        cpu: cpu::Worker::new(
            CpuState {
                chain: operators,
                routers,
            },
            CPU_QUEUE_DEPTH,
        ),
        writers: outputs.into_iter().map(OutputWriter::new).collect(),
        sink,
        late_sink,
        metrics: TaskMetrics::default(),
        progress,
        scans,
        watermarks,
        checkpoints,
        hook,
    };
    match task.run(input).await {
        Ok(()) => task.complete().await,
        Err(e) => {
            for writer in task.writers {
                writer.abort().await;
            }
            Err(e)
        }
    }
}

/// What lives on the CPU pool: the chain and the partitioners.
struct CpuState {
    chain: OperatorChain,
    routers: Vec<PartitionRouter>,
}

/// A chain's output, split for every output edge.
struct Routed {
    pieces: Vec<Vec<(usize, RecordBatch)>>,
    batches: Vec<RecordBatch>,
    watermark: Option<i64>,
    /// A control event that follows the output on every pipelined output.
    then: Option<Event>,
    /// The chain has more to emit from `finish`.
    more: bool,
    /// At a barrier: the operators' states.
    states: Option<std::result::Result<Vec<Option<Vec<RecordBatch>>>, String>>,
    /// Records too late for an operator, for the side output.
    late: Vec<RecordBatch>,
}

impl CpuState {
    fn route(&mut self, out: ChainOutput, then: Option<Event>) -> Result<Routed> {
        let mut pieces = vec![Vec::new(); self.routers.len()];
        for batch in &out.batches {
            for (router, pieces) in self.routers.iter_mut().zip(&mut pieces) {
                pieces.extend(router.route(batch.clone())?);
            }
        }
        Ok(Routed {
            pieces,
            batches: out.batches,
            watermark: out.watermark,
            then,
            more: out.more,
            states: out.states,
            late: out.late,
        })
    }
}

struct Task {
    info: TaskInfo,
    cpu: cpu::Worker<CpuState, Result<Routed>>,
    writers: Vec<OutputWriter>,
    sink: Option<Box<dyn Sink>>,
    /// Where late records go, when they are not dropped.
    late_sink: Option<Box<dyn Sink>>,
    metrics: TaskMetrics,
    progress: InputProgress,
    /// Whether the input is a source (whose rows count as scanned).
    scans: bool,
    /// The watermarks of a source task, when its source has a strategy.
    watermarks: Option<WatermarkGenerator>,
    /// Its part in checkpoints, when the job takes them.
    checkpoints: Option<Participant>,
    /// A test's hook into the task.
    hook: Option<Arc<dyn TaskHook>>,
}

impl Task {
    /// Reads every event of `input`, handing the work to the CPU worker up
    /// to [`CPU_QUEUE_DEPTH`] events ahead and writing results out as they
    /// come back, then finishes the chain.
    async fn run(&mut self, input: TaskInput) -> Result<()> {
        for input in self.progress.empty_inputs() {
            self.submit(move |chain| chain.end_of_input(input), None);
        }
        if let Some(status) = self.watermarks.as_mut().and_then(|g| g.start()) {
            self.send_status(status);
        }
        let mut reading = true;
        let mut read = Box::pin(input.next());
        while reading || self.cpu.in_flight() > 0 {
            let room = self.cpu.has_room();
            let tick = self.watermarks.as_ref().and_then(|g| g.next_tick());
            let triggered = self
                .checkpoints
                .as_ref()
                .is_some_and(|c| c.awaits_trigger());
            tokio::select! {
                // Results first: output leaves as soon as it is ready.
                biased;
                Some(routed) = self.cpu.next_result(), if self.cpu.in_flight() > 0 => {
                    self.write_out(routed?).await?;
                }
                (input, event) = &mut read, if reading && room => match event {
                    Some(event) => {
                        self.dispatch(event?)?;
                        // A barrier asked for while the source read goes
                        // after what it read.
                        if let Some(barrier) = self
                            .checkpoints
                            .as_mut()
                            .and_then(|c| c.inject(input.positions()))
                        {
                            self.submit_barrier(barrier);
                        }
                        read.set(input.next());
                    }
                    None => reading = false,
                },
                Some(barrier) = next_trigger(&mut self.checkpoints), if reading && triggered => {
                    if let Some(checkpoints) = &mut self.checkpoints {
                        checkpoints.trigger(barrier);
                    }
                }
                () = sleep_until(tick), if reading && room && tick.is_some() => {
                    if let Some(generator) = &mut self.watermarks {
                        let update = generator.on_tick(Instant::now());
                        self.apply(0, ProgressChange {
                            input_ended: false,
                            status: update.status,
                            watermark: update.watermark,
                        });
                    }
                }
            }
        }
        // Finishing emits in parts: each is written out (and waits for room
        // downstream) before the next is asked for.
        loop {
            self.submit(|chain| chain.finish(), None);
            let routed = self
                .cpu
                .next_result()
                .await
                .expect("the finish job is in flight")?;
            let more = routed.more;
            self.write_out(routed).await?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Hands the work one input event asks for to the CPU worker.
    fn dispatch(&mut self, event: InputEvent) -> Result<()> {
        let InputEvent {
            input,
            channel,
            event,
        } = event;
        match event {
            // A quiet source's empty batch: nothing to do but let barriers
            // in.
            Event::Batch(batch) if self.scans && batch.num_rows() == 0 => {}
            Event::Batch(batch) => {
                self.count_in(&batch)?;
                let Some(generator) = &mut self.watermarks else {
                    self.submit(move |chain| chain.process_batch(input, batch), None);
                    return Ok(());
                };
                // A source batch: its split is active, and its times may
                // advance the watermark, which follows the batch.
                let split = channel as u32;
                let status = generator.activate(split, Instant::now());
                let watermark = generator.observe(split, &batch)?;
                if let Some(status) = status {
                    self.send_status(status);
                }
                self.submit(move |chain| chain.process_batch(input, batch), None);
                self.apply(
                    input,
                    ProgressChange {
                        watermark,
                        ..ProgressChange::default()
                    },
                );
            }
            Event::Watermark(w) => {
                if let Some(min) = self.progress.on_watermark(input, channel, w) {
                    self.submit(move |chain| chain.on_watermark(min), None);
                }
            }
            Event::WatermarkStatus(status) => {
                let change = self.progress.on_status(input, channel, status);
                self.apply(input, change);
            }
            Event::Barrier(barrier) => {
                let open = self.progress.open_channels_count();
                if let Some(aligned) = self
                    .checkpoints
                    .as_mut()
                    .and_then(|c| c.arrive(barrier, open))
                {
                    self.submit_barrier(aligned);
                }
            }
            Event::EndOfPartition => {
                let change = self.progress.on_end(input, channel);
                self.apply(input, change);
                let open = self.progress.open_channels_count();
                if let Some(aligned) = self
                    .checkpoints
                    .as_mut()
                    .and_then(|c| c.channel_ended(open))
                {
                    self.submit_barrier(aligned);
                }
            }
        }
        Ok(())
    }

    /// Passes a barrier (injected, or aligned over every channel) to the
    /// chain, after everything queued before it; the channels read again.
    fn submit_barrier(&mut self, barrier: Barrier) {
        self.submit(
            move |chain| chain.on_barrier(barrier),
            Some(Event::Barrier(barrier)),
        );
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.release();
        }
    }

    /// Queues what a change of the inputs' progress asks for: the end of
    /// `input`, a status for the outputs, a watermark for the chain.
    fn apply(&mut self, input: usize, change: ProgressChange) {
        let ProgressChange {
            input_ended,
            status,
            watermark,
        } = change;
        if input_ended {
            self.submit(move |chain| chain.end_of_input(input), None);
        }
        if let Some(status) = status {
            self.send_status(status);
        }
        if let Some(min) = watermark {
            self.submit(move |chain| chain.on_watermark(min), None);
        }
    }

    /// Sends a watermark status to every output, after what is queued.
    fn send_status(&mut self, status: WatermarkStatus) {
        self.submit(
            |_| Ok(Default::default()),
            Some(Event::WatermarkStatus(status)),
        );
    }

    /// Counts an incoming batch; fails here when a test's hook says so.
    fn count_in(&mut self, batch: &RecordBatch) -> Result<()> {
        let before = self.metrics.rows_in;
        self.metrics.rows_in += batch.num_rows() as u64;
        self.metrics.bytes_in += batch_data_bytes(batch) as u64;
        self.info.metrics.set(self.metrics);
        if self.scans {
            self.info.scanned.add(batch.num_rows() as u64);
        }
        match &self.hook {
            Some(hook) => hook.records_in(&self.info, before, self.metrics.rows_in),
            None => Ok(()),
        }
    }

    /// Queues `work` on the chain, with the routing of its output, on the
    /// CPU worker; `then` follows the output downstream.
    fn submit<F>(&mut self, work: F, then: Option<Event>)
    where
        F: FnOnce(&mut OperatorChain) -> Result<ChainOutput> + Send + 'static,
    {
        self.cpu.submit(move |state: &mut CpuState| {
            work(&mut state.chain).and_then(|out| state.route(out, then))
        });
    }

    /// Writes one job's routed output to the outputs and the sink.
    async fn write_out(&mut self, mut routed: Routed) -> Result<()> {
        for batch in &routed.batches {
            self.metrics.rows_out += batch.num_rows() as u64;
            self.metrics.bytes_out += batch_data_bytes(batch) as u64;
        }
        self.info.metrics.set(self.metrics);
        for (writer, pieces) in self.writers.iter_mut().zip(routed.pieces) {
            for (subpartition, piece) in pieces {
                writer.write(subpartition, piece).await?;
            }
        }
        if let Some(sink) = &mut self.sink {
            for batch in routed.batches {
                sink.write_batch(batch).await?;
            }
        }
        if let Some(late) = &mut self.late_sink {
            for batch in std::mem::take(&mut routed.late) {
                late.write_batch(batch).await?;
            }
        }
        let controls = routed.watermark.map(Event::Watermark).into_iter();
        for event in controls.chain(routed.then) {
            for writer in &mut self.writers {
                writer.broadcast(event.clone()).await?;
            }
            if let (Event::Barrier(barrier), Some(states)) = (event, routed.states.take()) {
                self.snapshot(barrier, states).await;
            }
        }
        Ok(())
    }

    /// The chain snapshotted its state at `barrier`, which went on
    /// downstream: the sink prepares its commit, and the state is written
    /// out and acknowledged in the background.
    async fn snapshot(
        &mut self,
        barrier: Barrier,
        states: std::result::Result<Vec<Option<Vec<RecordBatch>>>, String>,
    ) {
        let checkpoint = barrier.checkpoint_id;
        let mut committables = Vec::with_capacity(2);
        for (sink, what) in [
            (&mut self.sink, "its sink"),
            (&mut self.late_sink, "its late records' sink"),
        ] {
            committables.push(match sink {
                Some(sink) => sink
                    .prepare_commit(checkpoint)
                    .await
                    .map_err(|e| format!("{what}: {e}")),
                None => Ok(None),
            });
        }
        let late = committables.pop().expect("two");
        let committable = committables.pop().expect("two");
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.complete(barrier, states, committable, late);
        }
    }

    /// Completes every output and the sink, once its checkpoint uploads
    /// are done.
    async fn complete(mut self) -> Result<TaskReport> {
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.drain_uploads().await;
        }
        let mut partitions = Vec::new();
        let mut writers = std::mem::take(&mut self.writers).into_iter();
        while let Some(writer) = writers.next() {
            match writer.finish().await {
                Ok(written) => partitions.extend(written),
                Err(e) => {
                    for rest in writers {
                        rest.abort().await;
                    }
                    return Err(e);
                }
            }
        }
        for sink in [&mut self.sink, &mut self.late_sink].into_iter().flatten() {
            sink.finish().await?;
        }
        self.metrics.spilled_bytes = self.info.memory.spilled_bytes();
        self.metrics.spill_files = self.info.memory.spill_files();
        Ok(TaskReport {
            metrics: self.metrics,
            partitions,
            counters: self.info.counters.snapshot(),
        })
    }
}

/// The next barrier the coordinator asks a source task to inject.
async fn next_trigger(checkpoints: &mut Option<Participant>) -> Option<Barrier> {
    match checkpoints {
        Some(checkpoints) => checkpoints.next_trigger().await,
        None => std::future::pending().await,
    }
}

/// Waits until `at`; never when there is no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

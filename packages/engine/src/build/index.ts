export { runMake, makeArgs, type MakeRequest, type MakeResult } from './make.js';
export { scheduleGraph, type ScheduleOptions, type NodeOutcome } from './schedule.js';

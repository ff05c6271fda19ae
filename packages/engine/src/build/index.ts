export { runMake, makeArgs, questionMake, type MakeRequest, type MakeResult, type MakeQuestion } from './make.js';
export { scheduleGraph, type ScheduleOptions, type NodeOutcome } from './schedule.js';

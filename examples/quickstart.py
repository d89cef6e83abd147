"""Connect, read state, move, servo a short line: the same code on a real UR, a Franka or the simulator."""

import rmskill

with rmskill.connect("examples/arms/sim-ur5e.yaml") as arm:
    start = arm.state().base_T_tcp
    print("TCP", start.to_ur(), "force", arm.state().wrench.force.round(2))
    arm.move_to(start.translated([0.0, 0.05, 0.0]), speed=0.1)
    for i in range(1, 501):  # 1 s at 500 Hz: 20 mm along -y
        arm.servo(start.translated([0.0, 0.05 - 0.00004 * i, 0.0]))
    print("moved", round(arm.state().base_T_tcp.distance_mm(start), 2), "mm from the start")

"""Place the held plate into shelf_1 on a simulated UR5e: python examples/place_plate.py"""
import rmskill

skill = rmskill.load_skill("plate_placement")
with rmskill.connect("examples/arms/sim-ur5e.yaml") as arm:
    print(skill.run(arm, target="shelf_1"))
